# syntax=docker/dockerfile:1
#
# One image for every Alimi service; the command picks the service:
#
#   docker run alimi                              # python -m alimi_intake (the default)
#   docker run alimi alimi_segmenter
#   docker run alimi alimi_delivery --channel sms
#   docker run -e SANDBOX_HOST=0.0.0.0 alimi alimi_sandbox
#
# The runtime stage has no compiler and no build tools, runs as uid 10001 and never
# writes to its own filesystem, so it runs with a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# The virtual environment is the only thing the runtime stage copies. It has no pip of
# its own: the base image's pip installs into it with --python.
RUN python -m venv --without-pip /opt/alimi

COPY pyproject.toml requirements.lock ./

# requirements.lock pins and hashes the runtime dependencies and the development tools
# together (including secantusdb, a GPL test server that must never ship in the image).
# Keep only the runtime closure: the [project] dependencies of pyproject.toml and,
# following the lock's "# via" notes, everything they pull in.
RUN python - pyproject.toml requirements.lock > /tmp/runtime.lock <<'RUNTIME_LOCK'
import re
import sys
import tomllib
from pathlib import Path

DEV_ONLY = {"secantusdb", "pytest", "ruff", "mypy"}


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).strip().lower()


pyproject, lock = (Path(arg) for arg in sys.argv[1:3])
dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
roots = {canonical(re.match(r"[A-Za-z0-9._-]+", dep).group()) for dep in dependencies}

blocks, parents, current, in_via = {}, {}, None, False
for line in lock.read_text().splitlines():
    stripped = line.strip()
    if line and not line[0].isspace() and not line.startswith("#"):
        current = canonical(re.split(r"[=<>!~;\[ ]", line, maxsplit=1)[0])
        blocks[current], parents[current], in_via = [line], set(), False
    elif current is None or not stripped:
        continue
    elif stripped.startswith("# via"):
        in_via = True
        if stripped[5:].strip():
            parents[current].add(canonical(stripped[5:].split("(")[0]))
    elif in_via and stripped.startswith("#"):
        parents[current].add(canonical(stripped[1:].split("(")[0]))
    elif not stripped.startswith("#"):
        blocks[current].append(line)

missing = sorted(roots - blocks.keys())
if missing:
    sys.exit(f"runtime dependencies missing from {lock}: {', '.join(missing)}")
keep = set(roots)
while grown := {pkg for pkg, via in parents.items() if pkg not in keep and via & keep}:
    keep |= grown
if leaked := sorted(keep & DEV_ONLY):
    sys.exit(f"development-only packages reached the runtime set: {', '.join(leaked)}")
for name in sorted(keep):
    print("\n".join(blocks[name]))
RUNTIME_LOCK

# Hash-checked, wheels only: nothing is compiled and nothing unpinned comes in.
RUN python -m pip --python /opt/alimi/bin/python install \
        --require-hashes --no-deps --only-binary :all: -r /tmp/runtime.lock

# The project itself (setuptools comes from the build isolation environment). --no-deps:
# every dependency is already installed from the lock; pip check proves nothing is missing.
COPY README.md LICENSE ./
COPY shared/ shared/
COPY services/ services/
# The operators' CLI (alimi_cli) is part of the one distribution, so its sources come
# along, but not its dependencies (the `cli` extra: click, rich, httpx, PyYAML): it runs
# on operators' machines, not in the services' pods.
COPY cli/ cli/
RUN python -m pip --python /opt/alimi/bin/python install --no-deps . \
    && python -m pip --python /opt/alimi/bin/python check \
    && /opt/alimi/bin/python -m compileall -q /opt/alimi/lib

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="alimi" \
      org.opencontainers.image.description="Alimi services: intake, segmenter, delivery, sandbox" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 alimi \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin alimi

COPY --from=build /opt/alimi /opt/alimi

ENV PATH=/opt/alimi/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ALIMI_OPS_HOST=0.0.0.0

# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /opt/alimi

# intake HTTP API, sandbox, ops ports of intake / segmenter / delivery
EXPOSE 8080 8090 9100 9101 9102

ENTRYPOINT ["python", "-m"]
CMD ["alimi_intake"]
