# An extra bake file for builds whose steps must reach servers on the build machine's loopback
# (a local Hugging Face mirror in HF_ENDPOINT, the container tests' Hub double):
#
#   docker buildx bake -f docker-bake.hcl -f images/host-network.hcl --allow network.host
#
# Kept out of docker-bake.hcl because older buildx releases reject the `network` attribute, and
# `--set *.network=host` is not applied by current ones.
target "_common" {
  network      = "host"
  entitlements = ["network.host"]
}
