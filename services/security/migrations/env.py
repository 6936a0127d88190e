from services.kit.migrations import run_env
from services.security.models import SecurityModel

run_env(SecurityModel.metadata)
