"""The WSGI application as gunicorn loads it: in a process of its own, as a worker would."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, sys
import evidence_service.wsgi
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "views_loaded": "cases.api.views" in sys.modules and "audit.api.views" in sys.modules,
}))
"""


def test_what_the_application_loads_is_kept_out_of_full_garbage_collections(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "DEBUG": "1", "SECRET_KEY": "x" * 50}
    # Fixed arguments: this interpreter importing the WSGI module.
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    # Every view module imported before the first request, and all of it frozen (tens of
    # thousands of objects: the framework, the apps, the URLconf).
    assert loaded["views_loaded"] is True
    assert loaded["frozen"] > 20_000, loaded
