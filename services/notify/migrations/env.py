from services.kit.migrations import run_env
from services.notify.models import NotifyModel

run_env(NotifyModel.metadata)
