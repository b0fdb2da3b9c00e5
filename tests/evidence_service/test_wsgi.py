"""The WSGI application as a gunicorn worker loads it: in a process of its own."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, runpy, sys
import evidence_service.wsgi
imported = {"frozen": gc.get_freeze_count(), "views_loaded": "cases.api.views" in sys.modules}
hooks = runpy.run_path("gunicorn.conf.py")
hooks["post_worker_init"](None)
print(json.dumps({
    "on_import": imported,
    "frozen": gc.get_freeze_count(),
    "still_collected": len(gc.get_objects()),
    "views_loaded": "cases.api.views" in sys.modules and "audit.api.views" in sys.modules,
}))
"""


def test_a_worker_keeps_what_it_loaded_out_of_full_garbage_collections(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "DEBUG": "1", "SECRET_KEY": "x" * 50}
    # Fixed arguments: this interpreter importing the WSGI module and gunicorn's hook.
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    # Importing the module (as a test run or the development server does) freezes nothing.
    assert loaded["on_import"]["frozen"] == 0
    # The hook loads every view, then freezes all of it (the framework, the apps, the
    # URLconf: about a hundred thousand objects), leaving next to nothing to walk.
    assert loaded["views_loaded"] is True
    assert loaded["frozen"] > 50_000 and loaded["still_collected"] < 1_000, loaded
