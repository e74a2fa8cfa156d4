"""`python -m sandbox`: run the custom code runner with settings from the environment."""

import sys

from sandbox.errors import SettingsError
from sandbox.server import serve
from sandbox.settings import RunnerSettings

try:
    settings = RunnerSettings.from_env()
except SettingsError as error:
    sys.exit(str(error))
serve(settings)
