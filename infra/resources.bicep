// Excel Async Bridge: every resource, declared plainly with pinned API versions (no registry modules), so that
// tests/infra can check each property offline. One user-assigned identity does everything; no account keys.

@minLength(1)
param environmentName string
param location string = resourceGroup().location
param tags object = {}
param principalId string = ''
@allowed([
  'app'
  'delegated'
])
param graphAuth string = 'app'
param authClientId string = ''
@secure()
param authClientSecret string = ''
@secure()
param webhookSecret string
@secure()
param tokenSealingKeys string
@secure()
param statusLinkKeys string
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'
param webhookAllowedHosts string = ''
param alertEmail string = ''
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 40

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var delegated = graphAuth == 'delegated'

// Storage names the app reads (settings POLL_QUEUE, WEBHOOK_QUEUE, OPERATIONS_TABLE, DURATION_HISTORY_TABLE). The host moves a message
// that failed maxDequeueCount (host.json: 5) times to '<queue>-poison'; the template creates those too, so
// nothing depends on the app or the host creating a queue at run time (and the poison alert can name them).
var pollQueueName = 'operation-polls'
var webhookQueueName = 'webhook-deliveries'
var operationsTableName = 'operations'
// How long finished operations of each kind took (shared/schedule/history_store.py): the learned poll schedule.
var durationHistoryTableName = 'durations'
// Results too big for a Table property (shared/storage/result_blobs.py, setting RESULTS_CONTAINER): one blob per result.
var resultsContainerName = 'operation-results'
var deploymentContainerName = 'app-package-${take(token, 8)}'

// Built-in role definition ids (docs/deploy.md lists what each one allows and why it is needed).
var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

// ---------------------------------------------------------------- identity

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${token}'
  location: location
  tags: tags
}

// ---------------------------------------------------------------- monitoring

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${token}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true // telemetry only with an Entra token: APPLICATIONINSIGHTS_AUTHENTICATION_STRING below
  }
}

// The operations workbook: the app's bridge.* metrics (shared/observability/telemetry.py METRICS) from this component's
// customMetrics, with the poison-queue gauge and the dead-lettered webhooks beside (docs/observability.md).
// tests/infra/test_workbook.py checks it charts exactly the metrics the app emits.
resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsights.id, 'bridge-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Excel Async Bridge (${environmentName})'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: loadTextContent('workbook.json')
  }
}

// ---------------------------------------------------------------- storage

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_43:The name is 'st' + uniqueString() (15 lower-case alphanumerics, valid); checkov cannot evaluate the interpolation
  //checkov:skip=CKV_AZURE_206:Operations are short-lived (hours) and re-creatable; LRS is the cost choice, GRS doubles storage cost
  name: 'st${take(token, 22)}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false // no account keys and no key-based connection strings anywhere
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    //checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration reaches storage over the public endpoint; access is Entra-only (shared keys off)
    //checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: no private endpoint in this template, so the public endpoint stays enabled
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Big operation results, written and read by the app with the identity (its Blob Data Owner role below covers
// them; no second blob role is needed). Private: GET /api/operations/{id} serves them as if inline.
resource resultsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: resultsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource pollQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: pollQueueName
}

resource pollPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${pollQueueName}-poison'
}

resource webhookQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: webhookQueueName
}

resource webhookPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${webhookQueueName}-poison'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource operationsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: operationsTableName
}

resource durationHistoryTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: durationHistoryTableName
}

// ---------------------------------------------------------------- role assignments (the identity)
// Storage roles are scoped to the account: the host also uses the '-poison' queues and its own blobs.

// Blob Data Owner: the Functions host keeps leases, function keys and timers in blobs (AzureWebJobsStorage),
// and Flex Consumption reads the deployment package from deploymentContainer. Owner (not Contributor) because
// the host manages blob leases and container metadata; this is what Microsoft's Flex samples grant. The app's
// own blobs (big results in resultsContainer: upload, download, list, delete) need no more than this.
resource roleBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roleIds.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Queue Data Contributor: the one built-in queue role with messages/write ("Put or update a message",
// queues-auth-abac-attributes.md), which the host needs to release a message whose function failed
// (UpdateMessage with host.json's visibilityTimeout: azure-sdk-for-net QueueProcessor.ReleaseMessageAsync).
// Without it the release is a 403 and the message stays hidden for the listener's 10-minute visibility instead
// of 5 seconds. It also covers everything else the app and host do with queues: receive and delete
// (messages/process/action), send with a visibility delay and add to '<queue>-poison' (messages/write), queue
// length for scaling and GET /api/health (queues/read). Reader, Message Processor and Message Sender together
// still lack messages/write, so this one role replaces all three, as in Microsoft's Flex samples
// (infra/app/rbac.bicep). tests/infra/model.py maps every queue call to the data action it needs.
resource roleQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roleIds.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Table Data Contributor: the operations table: point reads, queries (list, health), inserts (records,
// idempotency keys), ETag-guarded merges and deletes (shared/operations/store.py); the duration history table: point
// reads, inserts and ETag-guarded replaces (shared/schedule/history_store.py). There is no narrower built-in role.
resource roleTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roleIds.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Monitoring Metrics Publisher: send telemetry to Application Insights, whose local (key) auth is off.
resource roleMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roleIds.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault Secrets User: resolve the Key Vault references in the app settings (keyVaultReferenceIdentity).
resource roleSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, identity.id, roleIds.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The deployer (azd's AZURE_PRINCIPAL_ID), not the app: Key Vault Secrets Officer so secrets can be rotated
// with `az keyvault secret set` (docs/deploy.md). Skipped when principalId is empty.
resource roleDeployerSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(keyVault.id, principalId, roleIds.keyVaultSecretsOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsOfficer)
    principalId: principalId // principalType left out: azd's principal may be a user or a service principal
  }
}

// ---------------------------------------------------------------- Key Vault

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:Flex Consumption without VNet integration resolves Key Vault references over the public endpoint; access is RBAC-only
  //checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: no private endpoint in this template
  name: 'kv-${take(token, 20)}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true // no access policies: Azure RBAC only
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource webhookSecretValue 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  //checkov:skip=CKV_AZURE_41:An expiry would silently stop webhook signing; rotation is manual and documented in docs/deploy.md
  parent: keyVault
  name: 'webhook-secret'
  properties: {
    value: webhookSecret
    contentType: 'text/plain; format=whsec'
  }
}

resource tokenSealingKeysValue 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  //checkov:skip=CKV_AZURE_41:An expiry would make sealed tokens unreadable; rotation is manual and documented in docs/deploy.md
  parent: keyVault
  name: 'token-sealing-keys'
  properties: {
    value: tokenSealingKeys
    contentType: 'text/plain'
  }
}

// Keys that sign per-operation status URLs (/api/status/{id}?se=...&sig=...), the Location given to pollers that
// send no credential (Power Automate; Logic Apps drops custom headers on follow-ups): '<id>:<base64 of 32 bytes>',
// space separated, newest first (the first signs, all verify). Generated once by the preprovision hook.
resource statusLinkKeysValue 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  //checkov:skip=CKV_AZURE_41:An expiry would silently break every signed status URL; rotation is manual and documented in docs/deploy.md
  parent: keyVault
  name: 'status-link-keys'
  properties: {
    value: statusLinkKeys
    contentType: 'text/plain; format=keyid:base64'
  }
}

resource authClientSecretValue 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (delegated) {
  //checkov:skip=CKV_AZURE_114:contentType is set below; checkov does not see properties of a conditional (if) resource
  //checkov:skip=CKV_AZURE_41:The app registration's secret has its own expiry in Entra ID; rotate both together (docs/deploy.md)
  parent: keyVault
  name: 'auth-client-secret'
  properties: {
    value: authClientSecret
    contentType: 'text/plain'
  }
}

// ---------------------------------------------------------------- Function app (Flex Consumption)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225:Flex Consumption zone redundancy is region-dependent and needs always-ready instances (cost); enable it per region if required
  name: 'plan-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_222:Public network access is the point: Logic Apps, scripts and webhook senders reach the API over the internet (function keys)
  //checkov:skip=CKV_AZURE_213:An App Service health check pings every instance each minute, defeating scale to zero and costing storage transactions; alerts cover failures
  //checkov:skip=CKV_AZURE_17:Callers are Logic Apps and scripts with function keys; client certificates are not part of the API
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales per function up to maximumInstanceCount; there is no zone-redundant instance count to set
  //checkov:skip=CKV_AZURE_78:Flex Consumption has no FTP/FTPS endpoint at all; siteConfig.ftpsState is in its deprecation table and newer stamps reject it (ARM 51021)
  name: 'func-${token}'
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identity.id // Key Vault references resolve with the user-assigned identity
    // No ftpsState (nor any other property of the Flex Consumption deprecation table, functions-app-settings.md):
    // Flex has no FTP(S) at all ("FTPS not supported") and newer stamps reject the property (ARM error 51021).
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// App settings. tests/infra/test_consistency.py checks this list against every setting shared/ reads.
// Flex Consumption takes no FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION (functionAppConfig.runtime).
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13:False positive: checkov applies Microsoft.Web/sites checks to this sites/config child (auth is authsettingsV2, graphAuth=delegated)
  //checkov:skip=CKV_AZURE_63:False positive (sites check on a sites/config child); Functions logs go to Application Insights, not App Service HTTP logs
  //checkov:skip=CKV_AZURE_65:False positive (sites check on a sites/config child); detailed error pages do not apply to a Functions API
  //checkov:skip=CKV_AZURE_66:False positive (sites check on a sites/config child); failed request tracing is IIS-only, invocations are in Application Insights
  //checkov:skip=CKV_AZURE_80:False positive (sites check on a sites/config child); there is no .NET Framework in a Python app
  //checkov:skip=CKV_AZURE_88:False positive (sites check on a sites/config child); Flex Consumption has no Azure Files content share
  //checkov:skip=CKV_AZURE_222:False positive (sites check on a sites/config child); see the function app's own skip for public access
  parent: functionApp
  name: 'appsettings'
  properties: {
    // Host and app storage through the identity (no keys): the host uses the blob and queue URIs,
    // shared/runtime/settings.py the queue, table and blob URIs (big results).
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identity.properties.clientId
    // azure-identity DefaultAzureCredential picks this identity for Graph tokens.
    AZURE_CLIENT_ID: identity.properties.clientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
    // The Python worker hands each invocation the host's trace context, so the app's own OpenTelemetry spans
    // (azure-monitor-opentelemetry, shared/observability/telemetry.py) join the host's request in one transaction.
    PYTHON_ENABLE_OPENTELEMETRY: 'true'
    GRAPH_BASE_URL: graphBaseUrl
    WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.properties.vaultUri}secrets/${webhookSecretValue.name}/)'
    TOKEN_SEALING_KEYS: '@Microsoft.KeyVault(SecretUri=${keyVault.properties.vaultUri}secrets/${tokenSealingKeysValue.name}/)'
    STATUS_LINK_KEYS: '@Microsoft.KeyVault(SecretUri=${keyVault.properties.vaultUri}secrets/${statusLinkKeysValue.name}/)'
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'false'
    WEBHOOK_ALLOWED_HOSTS: webhookAllowedHosts
    WEBHOOK_RETRY_INITIAL_DELAY_SECONDS: '5'
    WEBHOOK_RETRY_WINDOW_SECONDS: '86400'
    // Finished operations, their results and idempotency keys are deleted this many days after completion.
    RETENTION_DAYS: '30'
    POLL_INITIAL_DELAY_SECONDS: '1'
    POLL_MAX_DELAY_SECONDS: '240'
    OPERATION_TIMEOUT_SECONDS: '3600'
    POLL_MAX_TRANSIENT_FAILURES: '8'
    // The lane per workbook: Excel requests in flight per workbook (0: unbounded), and a dead holder's lease.
    WORKBOOK_CONCURRENCY: '1'
    LANE_LEASE_SECONDS: '600'
    POLL_QUEUE: pollQueue.name
    WEBHOOK_QUEUE: webhookQueue.name
    OPERATIONS_TABLE: operationsTable.name
    DURATION_HISTORY_TABLE: durationHistoryTable.name
    RESULTS_CONTAINER: resultsContainer.name
    GRAPH_AUTH: graphAuth
    // Owner of operations when no authenticated caller is known (App Service Authentication off).
    DEFAULT_OWNER: 'default'
    MICROSOFT_PROVIDER_AUTHENTICATION_SECRET: delegated ? '@Microsoft.KeyVault(SecretUri=${keyVault.properties.vaultUri}secrets/auth-client-secret/)' : ''
    // GRAPH_AUTH=delegated: the same app registration exchanges callers' tokens on their behalf (OBO). Without a
    // client secret the managed identity signs a federated client assertion (preferred: no secret at all).
    DELEGATED_TENANT_ID: delegated ? subscription().tenantId : ''
    DELEGATED_CLIENT_ID: delegated ? authClientId : ''
    DELEGATED_CLIENT_SECRET: delegated && !empty(authClientSecret) ? '@Microsoft.KeyVault(SecretUri=${keyVault.properties.vaultUri}secrets/auth-client-secret/)' : ''
    // Optional alternative to the secret: a certificate (a Key Vault certificate reference gives base64 PKCS#12).
    DELEGATED_CLIENT_CERTIFICATE: ''
  }
  dependsOn: [
    roleBlobOwner
    roleQueueContributor
    roleTableContributor
    roleMetricsPublisher
    roleSecretsUser
    authClientSecretValue
  ]
}

// graphAuth=delegated: App Service Authentication (Entra ID) in front of the API. Callers send a user token;
// the platform validates it. excludedPaths: the anonymous routes (auth_level ANONYMOUS in function_app.py) stay
// reachable without a token: health, the OpenAPI document, and the signed status routes GET/DELETE
// /api/status/{id}, which carry their own signature for pollers that send no credential (Power Automate; Logic
// Apps' follow-ups re-send only the action's authentication). The docs do not say whether an entry is an exact
// path or may end in '/*'; Microsoft's answer on MicrosoftDocs/azure-docs#86514 is that '/folder/sub-folder/*'
// excludes everything below it, so '/api/status/*' covers every id. Under an exact-path reading no entry can
// cover per-operation paths: the postdeploy hook probes /api/status/<probe> without a token and warns when App
// Service Authentication itself answers 401 (docs/deploy.md, "Signed status URLs"). The operations console's files
// (/api/console, anonymous at the host: they hold no data) are deliberately not excluded: the page is behind sign-in.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (delegated) {
  //checkov:skip=CKV_AZURE_13:False positive: checkov applies Microsoft.Web/sites checks to this sites/config child (auth is authsettingsV2, graphAuth=delegated)
  //checkov:skip=CKV_AZURE_63:False positive (sites check on a sites/config child); Functions logs go to Application Insights, not App Service HTTP logs
  //checkov:skip=CKV_AZURE_65:False positive (sites check on a sites/config child); detailed error pages do not apply to a Functions API
  //checkov:skip=CKV_AZURE_66:False positive (sites check on a sites/config child); failed request tracing is IIS-only, invocations are in Application Insights
  //checkov:skip=CKV_AZURE_80:False positive (sites check on a sites/config child); there is no .NET Framework in a Python app
  //checkov:skip=CKV_AZURE_88:False positive (sites check on a sites/config child); Flex Consumption has no Azure Files content share
  //checkov:skip=CKV_AZURE_222:False positive (sites check on a sites/config child); see the function app's own skip for public access
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      // Anonymous routes of function_app.py (see the comment above this resource)
      excludedPaths: [
        '/api/health'
        '/api/openapi.json'
        '/api/status/*'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          clientSecretSettingName: 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET'
          openIdIssuer: 'https://sts.windows.net/${subscription().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${authClientId}'
            authClientId
          ]
        }
      }
    }
    // Off: a bearer-token API (callers send a token on every request); a store would only keep tokens at rest.
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
  dependsOn: [
    appSettings
  ]
}

// ---------------------------------------------------------------- alerts

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${token}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'xlbridge'
    enabled: true
    emailReceivers: [
      {
        name: 'owner'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// A message reached maxDequeueCount and the host moved it to a '-poison' queue: an operation's poll chain or a
// webhook delivery stopped. The alert does not read the host's "MaxDequeueCount" trace: Application Insights
// sampling may drop traces (host.json samples everything but Request;Exception). It reads Azure Storage's own
// resource log instead, which no sampling touches: every PutMessage into a '-poison' queue is a row of
// StorageQueueLogs (Azure Monitor tables reference, StorageQueueLogs: OperationName, StatusText, ObjectKey, Uri)
// once this diagnostic setting sends the queue service's StorageWrite category to the workspace.
// API version: diagnosticSettings has no GA version that supports a resource-scoped setting with workspaceId
// (2016-09-01 is the old 'service' form); 2021-05-01-preview is what Microsoft's samples and AVM modules use.
resource queueWriteLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'queue-writes-to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
    ]
  }
}

resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'alert-poison-${token}'
  location: location
  tags: tags
  properties: {
    displayName: 'Excel Async Bridge: message moved to a poison queue'
    description: 'A queue message failed maxDequeueCount times and was put in ${pollPoisonQueue.name} or ${webhookPoisonQueue.name} (Storage resource log, not sampled).'
    severity: 2
    enabled: true
    scopes: [
      workspace.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    // StorageQueueLogs exists in the workspace only once the first log row arrives, after this deployment, and
    // ARM validates a rule's query against the workspace (the Azure Monitor team's advice: skip the validation,
    // mspnp/aks-baseline-multi-region#94). tests/infra checks the query's shape instead.
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: 'StorageQueueLogs | where OperationName == "PutMessage" and StatusText == "Success" | extend target = strcat(ObjectKey, " ", Uri) | where target contains "/${pollPoisonQueue.name}" or target contains "/${webhookPoisonQueue.name}"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: empty(alertEmail) ? [] : [
        actionGroup.id
      ]
    }
  }
  dependsOn: [
    queueWriteLogs
  ]
}

// More than 5 % of function executions (HTTP and queue) failed over 15 minutes, with at least 20 executions.
resource failureRateAlert 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'alert-failures-${token}'
  location: location
  tags: tags
  properties: {
    displayName: 'Excel Async Bridge: failure rate above 5 %'
    description: 'Failed requests (HTTP 5xx and failed queue executions) above 5 % of all executions.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'requests | summarize total = count(), failed = countif(success == false) | where total >= 20 | extend failureRate = 100.0 * failed / total'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'failureRate'
          operator: 'GreaterThan'
          threshold: 5
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: empty(alertEmail) ? [] : [
        actionGroup.id
      ]
    }
  }
}

output functionAppName string = functionApp.name
output keyVaultName string = keyVault.name
output storageAccountName string = storage.name
output identityClientId string = identity.properties.clientId
output functionUrl string = 'https://${functionApp.properties.defaultHostName}/api'
output healthUrl string = 'https://${functionApp.properties.defaultHostName}/api/health'
// The optional sample Logic App is not part of this deployment: it needs a function key, which the host can only
// list once code is deployed (listKeys before that fails with "ServiceUnavailable from host runtime",
// Azure/azure-functions-host#5722, #6568). The azd postdeploy hook deploys infra/sample-logic-app.bicep with it.
output sampleLogicAppName string = 'logic-${token}'
output openApiUrl string = 'https://${functionApp.properties.defaultHostName}/api/openapi.json'
