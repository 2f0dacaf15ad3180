# The training worker image of one commit of this repository (dagster_project.k8s runs it as a pod):
#
#   commit=$(git rev-parse HEAD)
#   docker build --build-arg GIT_COMMIT=$commit -t registry.example/paco-fr:$commit .
#   docker push registry.example/paco-fr:$commit
#
# The tag is the commit, the commit is baked in (PACO_FR_IMAGE_COMMIT), and a worker refuses to train
# when the orchestrator runs another commit. torch from PyPI carries its CUDA libraries; the node needs
# the NVIDIA driver and container toolkit. Data never goes into the image: the pod pulls exactly the
# versions it trains on from the DVC remote.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends git libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace/paco-fr
COPY . .
ARG GIT_COMMIT
# The build context must be that commit, unmodified where code lives.
RUN test -n "$GIT_COMMIT" \
 && test "$(git rev-parse HEAD)" = "$GIT_COMMIT" \
 && git diff --quiet HEAD -- paco_fr dagster_project pyproject.toml dvc.yaml
RUN pip install --no-cache-dir -e ".[k8s]"

ENV PACO_FR_IMAGE_COMMIT=$GIT_COMMIT \
    HF_HUB_OFFLINE=1 \
    WANDB_MODE=offline \
    DVC_NO_ANALYTICS=1 \
    DAGSTER_DISABLE_TELEMETRY=1
