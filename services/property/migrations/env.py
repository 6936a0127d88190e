from services.kit.migrations import run_env
from services.property.models import PropertyModel

run_env(PropertyModel.metadata)
