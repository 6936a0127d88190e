from services.kit.migrations import run_env
from services.parking.models import Base

run_env(Base.metadata)
