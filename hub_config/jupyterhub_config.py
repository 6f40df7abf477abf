"""JupyterHub configuration of the AI Testbed Portal.

Everything comes from the site settings file ($AITESTBED_SETTINGS, default: settings.yaml
beside this file); edit that, not this.
"""

import os
import sys
from pathlib import Path

from aitestbed.hub.setup import run_extra_config, setup_portal
from aitestbed.settings import SETTINGS_ENV, SettingsError, load_settings

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

os.environ.setdefault(SETTINGS_ENV, str(Path(__file__).with_name("settings.yaml")))
try:
    setup_portal(c, load_settings())
    run_extra_config(c)  # the operator's snippets (Helm: hub.extraConfig) have the last word
except SettingsError as error:
    print(error, file=sys.stderr)
    sys.exit(2)
