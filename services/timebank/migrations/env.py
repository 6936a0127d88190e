from services.kit.migrations import run_env
from services.timebank.models import Base

run_env(Base.metadata)
