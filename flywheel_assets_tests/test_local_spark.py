"""The local Spark server: one per FLYWHEEL_HOME, however many processes ask at once."""

import json
import os
import subprocess
import sys

from flywheel_assets.local_spark import SparkServer

ENSURE = "from flywheel_assets.local_spark import SparkServer; import sys; print(SparkServer(sys.argv[1], 'local[1]', '1g').ensure())"


def test_concurrent_starts_share_one_server_and_stop_ends_it(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", ENSURE, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    urls = {p.communicate(timeout=300)[0].strip() for p in procs}
    server = SparkServer(tmp_path)
    try:
        assert len(urls) == 1 and urls == {server.running_url()}
        state = json.loads((tmp_path / "server.json").read_text())
        assert urls == {f"sc://127.0.0.1:{state['port']}"}
        log = (tmp_path / "server.log").read_text()
        assert log.count("Spark Connect server started") <= 1
    finally:
        assert server.stop()
    assert server.running_url() is None
    try:
        os.kill(state["pid"], 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
