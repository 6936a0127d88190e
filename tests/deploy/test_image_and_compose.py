"""The image (Dockerfile, its requirements) and the compose file, checked without Docker."""

from __future__ import annotations

import re
import subprocess
import tomllib

from deploy.runtime_requirements import LOCAL_STACK, requirement_name, runtime_dependencies
from tests.deploy.files import COMPONENTS, DEPLOY, ROOT, compose, lock_pins, of_kind, release_version, tool

DOCKERFILE = DEPLOY / "Dockerfile"


def test_hadolint_passes_the_dockerfile() -> None:
    result = subprocess.run(
        [str(tool("hadolint")), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_builds_in_stages_and_runs_as_uid_10001() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, flags=re.MULTILINE)
    assert [stage for _, stage in stages] == ["build", "docs", "runtime"]
    images = dict((stage, image) for image, stage in stages)
    assert all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", images[stage]) for stage in ("build", "runtime"))
    assert re.fullmatch(r"node:\d+\.\d+\.\d+-\w+-slim", images["docs"]), "the docs stage's node is pinned"
    runtime = text.split("AS runtime", 1)[1]
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert re.search(r"^USER 10001:10001$", runtime, flags=re.MULTILINE)
    assert "requirements-runtime.txt" in text and "requirements.lock" not in text
    assert not re.search(r"apt-get|gcc|build-essential", text), "no compilers: wheels only"


def test_the_runtime_requirements_are_the_locks_versions_without_servers_or_dev_tools() -> None:
    runtime = lock_pins(DEPLOY / "requirements-runtime.txt")
    lock = lock_pins(ROOT / "requirements.lock")
    assert {name: lock.get(name) for name in runtime} == runtime, "the image installs the lock's versions"
    assert {requirement_name(dep) for dep in runtime_dependencies()} <= set(runtime)
    dev = {requirement_name(dep) for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]}
    assert not (LOCAL_STACK | dev) & set(runtime), (LOCAL_STACK | dev) & set(runtime)
    assert LOCAL_STACK <= set(lock), "the names filtered out are the lock's, spelt the same"


def test_compose_runs_what_the_manifests_run() -> None:
    spec = compose()
    services = spec["services"]
    assert set(COMPONENTS) | {"migrate", "postgres", "redis", "kafka"} == set(services)
    deployments = of_kind("Deployment")
    for name in COMPONENTS:
        service = services[name]
        assert service["image"] == f"community-platform:{release_version()}"
        assert service["user"] == "10001:10001" and service["read_only"] is True
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]
        assert any(t.startswith("/tmp") for t in service["tmpfs"])
        assert service["command"] == deployments[name]["spec"]["template"]["spec"]["containers"][0]["command"], name
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    (job,) = of_kind("Job").values()
    job_command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert services["migrate"]["command"] == [part.replace("$s", "$$s") for part in job_command]
    assert services["migrate"]["restart"] == "no"


def test_compose_refers_only_to_what_it_declares() -> None:
    spec = compose()
    services = spec["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            healthy = condition["condition"] == "service_healthy"
            assert not healthy or "healthcheck" in services[dependency], (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in spec.get("volumes", {}), (name, source)
        assert "image" in service, name
        assert not str(service["image"]).endswith(":latest") and ":" in service["image"], name


def test_the_runtime_image_holds_every_documentation_asset_the_gateway_serves() -> None:
    from gateway.pages import DOC_ASSETS

    text = DOCKERFILE.read_text()
    runtime = text.split("AS runtime", 1)[1]
    copied: set[str] = set()
    for line in re.findall(r"^COPY --from=docs (.+)$", runtime, flags=re.MULTILINE):
        *sources, target = line.split()
        assert target.startswith("./node_modules/") and target.endswith("/")
        for source in sources:
            name = source.rsplit("/", 1)[1]
            # Each file lands where gateway/pages.py looks for it, beside gateway/ under /app.
            copied.add(target.removeprefix("./") + name)
            assert source == "/src/" + target.removeprefix("./") + name
    wanted = {str(path.relative_to(ROOT)) for path in DOC_ASSETS.values() if "node_modules" in path.parts}
    assert wanted and copied == wanted
    # Built from the lock (integrity hashes), not from whatever node_modules the builder has.
    assert "npm ci" in text.split("AS docs", 1)[1].split("AS runtime", 1)[0]
