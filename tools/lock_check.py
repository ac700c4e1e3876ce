"""Check that requirements.lock installs on a platform this machine is not: resolve the project
for it with the lock's exact versions as constraints, wheels only, then name the packages that
ship no wheel for it and show that each builds as a pure-Python wheel (py3-none-any), so
nothing there needs a compiler.

    python tools/lock_check.py [--platform aarch64-apple-darwin] [--macos 14.0]

Needs uv (`pip install uv`) and the package registry. Prints the platform's package list with
what it leaves out (the CUDA stack on macOS), and exits non-zero when a package cannot be had.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_WHEEL = re.compile(r"Because ([A-Za-z0-9_.\-]+)==\S+ has no usable wheels")


def canonical(name: str) -> str:
    """PEP 503's form of a package name: `ruamel.yaml`, `Ruamel_Yaml` -> `ruamel-yaml`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def compile_for(platform: str, sdist_ok: set[str], out: Path, env: dict) -> str:
    """uv's resolution for `platform` (wheels only but for `sdist_ok`): its error, or ""."""
    lock = [canonical(line.split("==")[0]) for line in (ROOT / "requirements.lock").read_text().splitlines()
            if "==" in line and not line.startswith((" ", "#"))]  # fmt: skip
    no_build = [arg for name in lock if name not in sdist_ok for arg in ("--only-binary", name)]
    command = ["uv", "pip", "compile", str(ROOT / "pyproject.toml"), "--python-platform", platform,
               "--python-version", "3.11", "-c", str(ROOT / "requirements.lock"),
               "--override", str(ROOT / "overrides.txt"), "-o", str(out), "-q", *no_build]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    return "" if result.returncode == 0 else result.stderr


def pure(name: str, version: str, env: dict) -> str:
    """The wheel tag `name`'s sdist builds to, here (a pure-Python one builds anywhere)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-binary", name, "-q",
                        "-w", tmp, f"{name}=={version}"], check=True, env=env)  # fmt: skip
        (wheel,) = Path(tmp).glob("*.whl")
        return "-".join(wheel.stem.split("-")[-3:])


def pins(text: str) -> dict[str, str]:
    return {canonical(n): v for n, v in re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, re.M)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", default="aarch64-apple-darwin")
    parser.add_argument("--macos", default="14.0", help="MACOSX_DEPLOYMENT_TARGET (torch's wheels: 14.0)")
    args = parser.parse_args()
    env = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": args.macos}
    sdist_ok: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "resolved.txt"
        while error := compile_for(args.platform, sdist_ok, out, env):
            missing = NO_WHEEL.search(error)
            if not missing or canonical(missing.group(1)) in sdist_ok:
                print(error, file=sys.stderr)
                return 1
            sdist_ok.add(canonical(missing.group(1)))
        resolved = pins(out.read_text())
    locked = pins((ROOT / "requirements.lock").read_text())
    left_out = sorted(set(locked) - set(resolved))
    print(
        f"{args.platform} (macOS {args.macos}), Python 3.11: {len(resolved)} of the lock's {len(locked)} "
        f"packages, every one at the locked version: {all(locked[k] == v for k, v in resolved.items())}"
    )
    print(f"  left out there (their markers): {', '.join(left_out)}")
    for name in sorted(sdist_ok):
        print(f"  no wheel for it: {name}=={resolved[name]}, builds to {pure(name, resolved[name], env)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
