# Shared by every rule file: helpers from the jtm package, never defined here.
from jtm.config import subset, validate_params

# Fail at load time on a params typo, not when the stage that reads it finally runs.
validate_params(config)
