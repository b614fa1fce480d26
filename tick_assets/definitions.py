"""The one Definitions object of the code location (tick_assets.definitions:defs)."""

from __future__ import annotations

import os

import dagster as dg

from tick_assets.assets.resources import TardisResource

# The key itself is resolved by Dagster at run time and never appears in config shown in the UI; without
# TARDIS_API_KEY only the first day of each month can be downloaded.
_api_key = dg.EnvVar("TARDIS_API_KEY") if os.environ.get("TARDIS_API_KEY") else None

defs = dg.Definitions(resources={"tardis": TardisResource(api_key=_api_key)})
