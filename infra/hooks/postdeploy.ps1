# azd postdeploy hook (Windows): same as postdeploy.sh.
$ErrorActionPreference = 'Stop'
$url = azd env get-value FUNCTION_URL
$graphAuth = azd env get-value GRAPH_AUTH 2>$null
if ($graphAuth -eq 'delegated') {
  $probe = Invoke-WebRequest -Uri "$url/status/excluded-path-probe" -SkipHttpErrorCheck -UseBasicParsing
  if ($probe.StatusCode -eq 401 -and -not ("$($probe.Headers['Content-Type'])" -like 'application/problem+json*')) {
    Write-Warning "App Service Authentication answered 401 for $url/status/...: the signed status URLs are not excluded on this stamp; see docs/deploy.md (Signed status URLs)"
  }
}
if ((azd env get-value DEPLOY_SAMPLE_LOGIC_APP 2>$null) -ne 'true') { exit 0 }
$rg = azd env get-value AZURE_RESOURCE_GROUP
$app = azd env get-value AZURE_FUNCTION_APP_NAME
$name = azd env get-value SAMPLE_LOGIC_APP_NAME
if ($graphAuth -eq 'delegated') {
  Write-Host 'DEPLOY_SAMPLE_LOGIC_APP: skipped: with GRAPH_AUTH=delegated the API also needs an Entra token, which the sample does not send'
  exit 0
}
$key = ''
for ($i = 0; $i -lt 12 -and -not $key; $i++) {
  $key = az functionapp keys list -g $rg -n $app --query functionKeys.default -o tsv 2>$null
  if (-not $key) { Start-Sleep -Seconds 10 }
}
if (-not $key) { Write-Error "could not read a function key of $app (az functionapp keys list); run 'azd hooks run postdeploy' later" }
$params = New-TemporaryFile
try {
  @{ '$schema' = 'https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#'; contentVersion = '1.0.0.0';
     parameters = @{ name = @{ value = $name }; bridgeUrl = @{ value = $url }; bridgeKey = @{ value = $key } } } |
    ConvertTo-Json -Depth 5 | Set-Content -Path $params -Encoding utf8
  az deployment group create -g $rg -n sample-logic-app --template-file infra/sample-logic-app.bicep --parameters "@$params" --query properties.provisioningState -o tsv
  Write-Host "sample Logic App $name deployed (docs/deploy.md: Integration assets)"
} finally {
  Remove-Item -Force $params
}
