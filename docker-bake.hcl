# ComfyUI + LTX-2 RunPod workers: the image matrix.
#
#   docker buildx bake            # all three variants: baked, slim, fp8 (the default group)
#   docker buildx bake fp8        # one variant
#   docker buildx bake --print    # what would be built, with every pin resolved
#
# Variables are set from the environment (VERSION=1.2.0 docker buildx bake) or a second bake
# file. The Hugging Face token is read from the environment variable HF_TOKEN and reaches the
# build only as the BuildKit secret `hf_token` (a file in the one RUN that downloads models),
# never as a build arg, so it is in no layer, history entry or image config.
# Image stages and what they share: images/Dockerfile. Pins and why: images/README.md.

# --- naming ------------------------------------------------------------------------------------
variable "REGISTRY" {
  # e.g. docker.io/yourname or ghcr.io/yourorg; empty = local names only
  default = ""
}
variable "IMAGE" {
  default = "ltx2-runpod-worker"
}
variable "VERSION" {
  # the project version (pyproject.toml); a test keeps them equal
  default = "0.1.0"
}
variable "MOVING_TAGS" {
  # releases also tag the bare variant name (`:fp8`)
  default = false
}
variable "CREATED" {
  # RFC 3339 build time for labels and build info; default: now
  default = ""
}
variable "GIT_REVISION" {
  default = ""
}
variable "SOURCE" {
  # the repository URL, for the org.opencontainers.image.source label (CI sets it)
  default = ""
}

# --- pins ----------------------------------------------------------------------------------------
variable "BASE_IMAGE" {
  # CUDA 12.8.1 "base" flavour (CUDA compat + the NVIDIA_REQUIRE_CUDA driver check; the CUDA
  # libraries come with the torch wheels), linux/amd64 manifest digest. See images/README.md.
  default = "nvidia/cuda:12.8.1-base-ubuntu24.04@sha256:e711c99333fdfe8ae1e677b4972be6c5021f0128a1d31f775c7e58d88921b6a9"
}
variable "COMFYUI_REPO" {
  default = "https://github.com/Comfy-Org/ComfyUI.git"
}
variable "COMFYUI_COMMIT" {
  # ComfyUI v0.26.0: the version whose node schemas the workflow tests validate against
  default = "7cb784e0f48784bb6ed588912e186e5ee1e9ee68"
}
variable "COMFYUI_PINS" {
  # directory holding custom-nodes.toml and the ComfyUI venv lock (requirements.lock.txt)
  default = "images/comfyui"
}
variable "INSTALL_TORCH" {
  # false only for test images (the ComfyUI double needs no torch)
  default = true
}
variable "TORCH_INDEX_URL" {
  default = "https://download.pytorch.org/whl/cu128"
}
variable "TORCH_VERSION" {
  # must be the version images/requirements/torch.txt locks; the build checks
  default = "2.9.1+cu128"
}
variable "PIP_INDEX_URL" {
  default = "https://pypi.org/simple"
}

# --- models ------------------------------------------------------------------------------------
variable "MODELS_LOCK_DIR" {
  # directory holding the models.lock.yaml to bake (and to ship in every variant)
  default = "."
}
variable "HF_ENDPOINT" {
  # a Hugging Face mirror or a local stand-in; empty = huggingface.co
  default = ""
}
variable "HF_CACHE" {
  # an existing Hugging Face hub cache (e.g. ~/.cache/huggingface/hub): its files are verified
  # and reused instead of downloaded again; empty = download everything
  default = ""
}
variable "TRUST_ON_FIRST_USE" {
  # let `fetch` download lock entries whose sha256 is still unknown (see models.lock.yaml)
  default = false
}

# --- build machine -----------------------------------------------------------------------------
variable "CA_BUNDLE" {
  # a CA bundle file for builds behind TLS-inspecting proxies (passed as the secret `ca`)
  default = ""
}
# Build steps that must reach a server on the build machine's loopback (a local Hugging Face
# mirror): add `-f images/host-network.hcl --allow network.host`.

function "tag" {
  params = [name]
  result = REGISTRY != "" ? "${REGISTRY}/${IMAGE}:${name}" : "${IMAGE}:${name}"
}

function "created" {
  params = []
  result = CREATED != "" ? CREATED : timestamp()
}

# Everything the three variants share: one definition, so the shared stages are the same
# build steps in every target and BuildKit builds them once per bake run.
target "_common" {
  context    = "."
  dockerfile = "images/Dockerfile"
  platforms  = ["linux/amd64"]
  contexts = merge(
    {
      comfyui        = "${COMFYUI_REPO}#${COMFYUI_COMMIT}"
      comfyui-pins   = COMFYUI_PINS
      models-lock    = MODELS_LOCK_DIR
    },
    HF_CACHE != "" ? { hf-cache = HF_CACHE } : {}
  )
  args = {
    BASE_IMAGE         = BASE_IMAGE
    COMFYUI_COMMIT     = COMFYUI_COMMIT
    INSTALL_TORCH      = INSTALL_TORCH
    TORCH_INDEX_URL    = TORCH_INDEX_URL
    TORCH_VERSION      = TORCH_VERSION
    PIP_INDEX_URL      = PIP_INDEX_URL
    HF_ENDPOINT        = HF_ENDPOINT
    TRUST_ON_FIRST_USE = TRUST_ON_FIRST_USE
    VERSION            = VERSION
    CREATED            = created()
  }
  secret = concat(
    ["id=hf_token,env=HF_TOKEN"],
    CA_BUNDLE != "" ? ["id=ca,src=${CA_BUNDLE}"] : []
  )
  labels = {
    "org.opencontainers.image.title"       = IMAGE
    "org.opencontainers.image.description" = "ComfyUI + LTX-2 video generation as a RunPod Serverless worker"
    "org.opencontainers.image.version"     = VERSION
    "org.opencontainers.image.created"     = created()
    "org.opencontainers.image.revision"    = GIT_REVISION
    "org.opencontainers.image.source"      = SOURCE
    "org.opencontainers.image.base.name"   = BASE_IMAGE
    "ltx2.worker.comfyui-commit"           = COMFYUI_COMMIT
    "ltx2.worker.torch-version"            = INSTALL_TORCH ? TORCH_VERSION : "none"
  }
}

# The variants: which Dockerfile stage each is, and which model set it bakes.
target "variant" {
  name     = v.name
  matrix   = {
    v = [
      { name = "baked", set = "bf16", licenses = "Apache-2.0 AND LicenseRef-LTX-2-Community-License AND LicenseRef-Gemma-Terms-of-Use AND MIT" },
      { name = "slim", set = "", licenses = "Apache-2.0" },
      { name = "fp8", set = "fp8", licenses = "Apache-2.0 AND LicenseRef-LTX-2-Community-License AND LicenseRef-Gemma-Terms-of-Use AND MIT" },
    ]
  }
  inherits = ["_common"]
  target   = v.name
  tags     = concat([tag("${VERSION}-${v.name}")], MOVING_TAGS ? [tag(v.name)] : [])
  labels = {
    "org.opencontainers.image.licenses" = v.licenses
    "ltx2.worker.variant"               = v.name
    "ltx2.worker.model-set"             = v.set != "" ? v.set : "none"
  }
}

group "default" {
  targets = ["baked", "slim", "fp8"]
}
