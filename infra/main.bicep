// Excel Async Bridge: entry point for `azd up` (subscription scope: one resource group per azd environment).
// Everything else is plain resource declarations in resources.bicep, so every property is visible to the
// offline checks in tests/infra (pycep-parser, checkov, the settings/roles consistency test).
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name; names the resource group and seeds resource names')
param environmentName string

@minLength(1)
@description('Azure region (must offer Flex Consumption: az functionapp list-flexconsumption-locations)')
param location string

@description('Object id of the user running azd; gets Key Vault Secrets Officer to rotate secrets (empty: none)')
param principalId string = ''

@allowed([
  'app'
  'delegated'
])
@description('app: the identity calls Graph with application permissions. delegated: App Service Authentication in front of the API')
param graphAuth string = 'app'

@description('delegated only: the API app registration client id (see docs/deploy.md)')
param authClientId string = ''

@secure()
@description('delegated only: the API app registration client secret (stored in Key Vault)')
param authClientSecret string = ''

@secure()
@description('Standard Webhooks secret(s) whsec_<base64>, space separated while rotating (set by the preprovision hook)')
param webhookSecret string

@secure()
@description('Token sealing keys (reserved for delegated mode; set by the preprovision hook)')
param tokenSealingKeys string

@secure()
@description('Status URL signing keys <id>:<base64 of 32 bytes>, space separated, newest first (set by the preprovision hook)')
param statusLinkKeys string

@description('Graph root; its origin is the only one that receives a Graph token')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('Comma/space separated webhook host allowlist (empty: any public host)')
param webhookAllowedHosts string = ''

@description('E-mail for alert notifications (empty: alerts fire in the portal only)')
param alertEmail string = ''

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

var tags = {
  'azd-env-name': environmentName
  app: 'excel-async-bridge'
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module resources 'resources.bicep' = {
  name: 'excel-async-bridge'
  scope: rg
  params: {
    environmentName: environmentName
    location: location
    tags: tags
    principalId: principalId
    graphAuth: graphAuth
    authClientId: authClientId
    authClientSecret: authClientSecret
    webhookSecret: webhookSecret
    tokenSealingKeys: tokenSealingKeys
    statusLinkKeys: statusLinkKeys
    graphBaseUrl: graphBaseUrl
    webhookAllowedHosts: webhookAllowedHosts
    alertEmail: alertEmail
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
}

// azd stores these in .azure/<env>/.env; docs/deploy.md shows how to use them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = resources.outputs.functionAppName
output AZURE_KEY_VAULT_NAME string = resources.outputs.keyVaultName
output AZURE_STORAGE_ACCOUNT_NAME string = resources.outputs.storageAccountName
output FUNCTION_URL string = resources.outputs.functionUrl
output HEALTH_URL string = resources.outputs.healthUrl
output OPENAPI_URL string = resources.outputs.openApiUrl
// For the postdeploy hook (DEPLOY_SAMPLE_LOGIC_APP=true): the sample Logic App is deployed after the code.
output SAMPLE_LOGIC_APP_NAME string = resources.outputs.sampleLogicAppName
output FETCH_FUNCTION_KEY string = 'az functionapp keys list -g ${rg.name} -n ${resources.outputs.functionAppName} --query functionKeys.default -o tsv'
