#!/bin/sh
# azd postdeploy hook, after the code is deployed (so the host runs and its key API answers):
# 1. GRAPH_AUTH=delegated: check that App Service Authentication lets the signed status URLs through
#    (excludedPaths '/api/status/*', see infra/resources.bicep): a request without a token must reach the app.
# 2. DEPLOY_SAMPLE_LOGIC_APP=true: deploy the optional sample Logic App (infra/sample-logic-app.bicep) with a
#    function key as its @secure() parameter. The key goes through a private temporary parameters file, never
#    the command line (visible to other local users) nor a template default (stored in the deployment).
set -eu
URL=$(azd env get-value FUNCTION_URL)
GRAPH_AUTH=$(azd env get-value GRAPH_AUTH 2>/dev/null || true)
if [ "$GRAPH_AUTH" = "delegated" ]; then
  # The app answers with application/problem+json; App Service Authentication's own 401 is not.
  HEAD=$(curl -sS -o /dev/null -w '%{http_code} %{content_type}' "$URL/status/excluded-path-probe" || true)
  case "$HEAD" in
    "401 application/problem+json"*|[!4]*|40[!1]*) ;;
    *) echo "WARNING: App Service Authentication answered $HEAD for $URL/status/...: the signed status URLs are not" \
            "excluded on this stamp; see docs/deploy.md (Signed status URLs)" >&2 ;;
  esac
fi
if [ "$(azd env get-value DEPLOY_SAMPLE_LOGIC_APP 2>/dev/null || true)" != "true" ]; then
  exit 0
fi
RG=$(azd env get-value AZURE_RESOURCE_GROUP)
APP=$(azd env get-value AZURE_FUNCTION_APP_NAME)
NAME=$(azd env get-value SAMPLE_LOGIC_APP_NAME)
if [ "$GRAPH_AUTH" = "delegated" ]; then
  echo "DEPLOY_SAMPLE_LOGIC_APP: skipped: with GRAPH_AUTH=delegated the API also needs an Entra token, which the sample does not send"
  exit 0
fi
# The host's key API can lag the deployment by a little while the new instance starts: try for up to 2 minutes.
KEY=""
attempt=0
while [ -z "$KEY" ] && [ "$attempt" -lt 12 ]; do
  KEY=$(az functionapp keys list -g "$RG" -n "$APP" --query functionKeys.default -o tsv 2>/dev/null || true)
  attempt=$((attempt + 1))
  [ -n "$KEY" ] || sleep 10
done
if [ -z "$KEY" ]; then
  echo "could not read a function key of $APP (az functionapp keys list); run 'azd hooks run postdeploy' later" >&2
  exit 1
fi
umask 077
PARAMS=$(mktemp)
trap 'rm -f "$PARAMS"' EXIT
printf '{"$schema":"https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#","contentVersion":"1.0.0.0","parameters":{"name":{"value":"%s"},"bridgeUrl":{"value":"%s"},"bridgeKey":{"value":"%s"}}}\n' \
  "$NAME" "$URL" "$KEY" > "$PARAMS"
az deployment group create -g "$RG" -n sample-logic-app --template-file infra/sample-logic-app.bicep \
  --parameters "@$PARAMS" --query properties.provisioningState -o tsv
echo "sample Logic App $NAME deployed (docs/deploy.md: Integration assets)"
