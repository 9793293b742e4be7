#!/bin/sh
# Runs a build command trusting the optional CA bundle passed as the BuildKit secret `ca`
# (builds behind TLS-inspecting proxies). Without the secret the command runs unchanged.
# The bundle replaces the default trust store, so pass a complete one (system CAs + the proxy's),
# e.g. /etc/ssl/certs/ca-certificates.crt of a machine that already trusts the proxy.
ca=/run/secrets/ca
if [ -s "$ca" ]; then
  # pip, git, curl, requests and httpx (huggingface_hub) each read their own variable.
  PIP_CERT="$ca" GIT_SSL_CAINFO="$ca" CURL_CA_BUNDLE="$ca" REQUESTS_CA_BUNDLE="$ca" SSL_CERT_FILE="$ca"
  export PIP_CERT GIT_SSL_CAINFO CURL_CA_BUNDLE REQUESTS_CA_BUNDLE SSL_CERT_FILE
fi
exec "$@"
