import services.governance.decision_models
import services.governance.pledge_models  # noqa: F401  (registers the pledge tables on the metadata)
from services.governance.models import Base
from services.kit.migrations import run_env

run_env(Base.metadata)
