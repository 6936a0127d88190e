from gateway.models import GatewayModel
from services.kit.migrations import run_env

run_env(GatewayModel.metadata)
