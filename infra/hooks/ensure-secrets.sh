#!/bin/sh
# azd preprovision hook: make sure the azd environment has the generated secrets the template stores in Key Vault.
# Existing values are kept (rotation is explicit: docs/deploy.md). Values live in .azure/<env>/.env.
set -eu
if [ -z "$(azd env get-value WEBHOOK_SECRET 2>/dev/null || true)" ]; then
  azd env set WEBHOOK_SECRET "whsec_$(openssl rand -base64 32)"
  echo "generated WEBHOOK_SECRET (azd env get-value WEBHOOK_SECRET shows it; receivers need it)"
fi
if [ -z "$(azd env get-value TOKEN_SEALING_KEYS 2>/dev/null || true)" ]; then
  azd env set TOKEN_SEALING_KEYS "$(openssl rand -base64 32)"
  echo "generated TOKEN_SEALING_KEYS"
fi
# Signs per-operation status URLs: '<key id>:<base64 of 32 random bytes>', newest first when rotating.
if [ -z "$(azd env get-value STATUS_LINK_KEYS 2>/dev/null || true)" ]; then
  azd env set STATUS_LINK_KEYS "s$(date -u +%Y%m%d):$(openssl rand -base64 32)"
  echo "generated STATUS_LINK_KEYS"
fi
