"""The azd hooks (infra/hooks/*.sh) run against stand-ins for `azd`, `az` and `curl` on PATH.

The stand-ins model only what the hooks use: `azd env get-value NAME` prints the value or fails when the
environment has none (azd: "ERROR: key 'NAME' not found in the environment values"), `azd env set NAME VALUE`
stores it; `az` records its arguments (and the parameters file it is given) and prints a function key for
`az functionapp keys list`; `curl -w '%{http_code} %{content_type}'` prints a configured status line.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra import model as m

HOOKS = m.INFRA / "hooks"
KEY = "fake-function-key-0123456789abcdef=="

AZD = r"""#!/bin/sh
store="$FAKE_DIR/azd.env"
touch "$store"
if [ "$1 $2" = "env get-value" ]; then
  line=$(grep "^$3=" "$store" | tail -n 1) ||
    { echo "ERROR: key '$3' not found in the environment values" >&2; exit 1; }
  printf '%s\n' "${line#*=}"
elif [ "$1 $2" = "env set" ]; then
  grep -v "^$3=" "$store" > "$store.new" || true
  printf '%s=%s\n' "$3" "$4" >> "$store.new"
  mv "$store.new" "$store"
else
  echo "unexpected azd $*" >&2; exit 2
fi
"""
AZ = r"""#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_DIR/az.calls"
case "$1 $2 $3" in
  "functionapp keys list") printf '%s\n' "$FAKE_KEY" ;;
  "deployment group create")
    for arg in "$@"; do
      case "$arg" in @*) cp "${arg#@}" "$FAKE_DIR/params.json"; echo "${arg#@}" > "$FAKE_DIR/params.path" ;; esac
    done
    echo Succeeded ;;
  *) echo "unexpected az $*" >&2; exit 2 ;;
esac
"""
CURL = r"""#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_DIR/curl.calls"
printf '%s' "$FAKE_CURL"
"""


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in (("azd", AZD), ("az", AZ), ("curl", CURL)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_DIR": str(tmp_path),
        "FAKE_KEY": KEY,
        "FAKE_CURL": "404 application/problem+json",
    }


def azd_env(fake: dict[str, str]) -> dict[str, str]:
    path = Path(fake["FAKE_DIR"]) / "azd.env"
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines)


def set_env(fake: dict[str, str], **values: str) -> None:
    with (Path(fake["FAKE_DIR"]) / "azd.env").open("a") as env:
        for name, value in values.items():
            env.write(f"{name}={value}\n")


def run(hook: str, fake: dict[str, str]) -> subprocess.CompletedProcess[str]:
    sh = shutil.which("sh")
    assert sh
    return subprocess.run(
        [sh, str(HOOKS / hook)],
        cwd=m.ROOT,
        env={**os.environ, **fake},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def calls(fake: dict[str, str], tool: str) -> list[str]:
    path = Path(fake["FAKE_DIR"]) / f"{tool}.calls"
    return path.read_text().splitlines() if path.exists() else []


# ---------------------------------------------------------------- preprovision: generated secrets


def test_preprovision_generates_each_secret_once(fake: dict[str, str]) -> None:
    proc = run("ensure-secrets.sh", fake)
    assert proc.returncode == 0, proc.stderr
    env = azd_env(fake)
    assert env["WEBHOOK_SECRET"].startswith("whsec_")
    assert len(base64.b64decode(env["WEBHOOK_SECRET"][6:], validate=True)) == 32
    assert len(base64.b64decode(env["TOKEN_SEALING_KEYS"], validate=True)) == 32
    # STATUS_LINK_KEYS: '<key id>:<base64 of 32 bytes>' (space separated, newest first, once rotated).
    entries = env["STATUS_LINK_KEYS"].split()
    assert len(entries) == 1
    kid, _, encoded = entries[0].rpartition(":")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", kid)
    assert len(base64.b64decode(encoded, validate=True)) == 32
    # A second run keeps every value: rotation is explicit (docs/deploy.md).
    assert run("ensure-secrets.sh", fake).returncode == 0
    assert azd_env(fake) == env


def test_preprovision_keeps_a_rotated_key_list(fake: dict[str, str]) -> None:
    rotated = f"s2:{base64.b64encode(bytes(32)).decode()} s1:{base64.b64encode(bytes([1]) * 32).decode()}"
    set_env(fake, STATUS_LINK_KEYS=rotated)
    assert run("ensure-secrets.sh", fake).returncode == 0
    assert azd_env(fake)["STATUS_LINK_KEYS"] == rotated


def test_every_generated_secret_is_a_main_bicep_parameter() -> None:
    params = json.loads((m.INFRA / "main.parameters.json").read_text())["parameters"]
    given = {spec["value"][2:-1] for spec in params.values() if str(spec["value"]).startswith("${")}
    generated = set(re.findall(r"azd env set ([A-Z_]+)", (HOOKS / "ensure-secrets.sh").read_text()))
    assert generated == {"WEBHOOK_SECRET", "TOKEN_SEALING_KEYS", "STATUS_LINK_KEYS"}
    assert generated <= given
    assert generated == set(re.findall(r"azd env set ([A-Z_]+)", (HOOKS / "ensure-secrets.ps1").read_text()))


# ---------------------------------------------------------------- postdeploy: the sample Logic App


def outputs(fake: dict[str, str], **extra: str) -> None:
    set_env(
        fake,
        AZURE_RESOURCE_GROUP="rg-dev",
        AZURE_FUNCTION_APP_NAME="func-abc",
        FUNCTION_URL="https://func-abc.azurewebsites.net/api",
        SAMPLE_LOGIC_APP_NAME="logic-abc",
        **extra,
    )


def test_postdeploy_does_nothing_without_the_switch(fake: dict[str, str]) -> None:
    outputs(fake)
    proc = run("postdeploy.sh", fake)
    assert proc.returncode == 0, proc.stderr
    assert calls(fake, "az") == [] and calls(fake, "curl") == []


def test_postdeploy_deploys_the_sample_with_the_key_as_a_secure_parameter(fake: dict[str, str]) -> None:
    outputs(fake, DEPLOY_SAMPLE_LOGIC_APP="true")
    proc = run("postdeploy.sh", fake)
    assert proc.returncode == 0, proc.stderr
    az = calls(fake, "az")
    assert az[0] == "functionapp keys list -g rg-dev -n func-abc --query functionKeys.default -o tsv"
    assert az[1].startswith(
        "deployment group create -g rg-dev -n sample-logic-app "
        "--template-file infra/sample-logic-app.bicep --parameters @"
    )
    assert (m.ROOT / "infra" / "sample-logic-app.bicep").exists()
    # The key travels in a parameters file, never on a command line, and the file is gone afterwards.
    assert all(KEY not in call for call in az)
    params = json.loads((Path(fake["FAKE_DIR"]) / "params.json").read_text())
    assert params["parameters"] == {
        "name": {"value": "logic-abc"},
        "bridgeUrl": {"value": "https://func-abc.azurewebsites.net/api"},
        "bridgeKey": {"value": KEY},
    }
    assert not Path((Path(fake["FAKE_DIR"]) / "params.path").read_text().strip()).exists()
    # The parameters match the template's.
    declared = m.parse_file(m.SAMPLE_LOGIC_APP)["parameters"]
    assert set(params["parameters"]) <= set(declared)
    assert {n for n, s in declared.items() if s.get("default") is None} <= set(params["parameters"])


def test_postdeploy_fails_when_no_key_can_be_read(fake: dict[str, str]) -> None:
    outputs(fake, DEPLOY_SAMPLE_LOGIC_APP="true")
    fake["FAKE_KEY"] = ""
    fake["PATH"] = f"{Path(fake['FAKE_DIR']) / 'nosleep'}:{fake['PATH']}"
    nosleep = Path(fake["FAKE_DIR"]) / "nosleep"
    nosleep.mkdir()
    (nosleep / "sleep").write_text("#!/bin/sh\nexit 0\n")  # the hook's retry pause, skipped here
    (nosleep / "sleep").chmod(0o755)
    proc = run("postdeploy.sh", fake)
    assert proc.returncode != 0
    assert "could not read a function key" in proc.stderr
    az = calls(fake, "az")
    assert len(az) == 12 and all(call.startswith("functionapp keys list") for call in az)


# ---------------------------------------------------------------- postdeploy: signed status URLs in delegated mode


@pytest.mark.parametrize(
    ("answer", "warned"),
    [
        ("401 text/html; charset=utf-8", True),
        ("401 ", True),
        ("401 application/problem+json", False),
        ("404 application/problem+json", False),
        ("403 application/problem+json", False),
        ("200 application/json", False),
    ],
)
def test_postdeploy_warns_when_authentication_blocks_the_status_route(
    fake: dict[str, str], answer: str, warned: bool
) -> None:
    outputs(fake, GRAPH_AUTH="delegated", DEPLOY_SAMPLE_LOGIC_APP="true")
    fake["FAKE_CURL"] = answer
    proc = run("postdeploy.sh", fake)
    assert proc.returncode == 0, proc.stderr
    assert calls(fake, "curl")[0].endswith("https://func-abc.azurewebsites.net/api/status/excluded-path-probe")
    assert ("WARNING" in proc.stderr) is warned, proc.stderr
    # The sample sends only a function key, which delegated mode does not accept alone: not deployed.
    assert calls(fake, "az") == [] and "skipped" in proc.stdout


def test_postdeploy_probes_nothing_in_app_mode(fake: dict[str, str]) -> None:
    outputs(fake, GRAPH_AUTH="app")
    assert run("postdeploy.sh", fake).returncode == 0
    assert calls(fake, "curl") == []
