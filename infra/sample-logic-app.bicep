// Optional sample: a Consumption Logic App that starts an Excel operation through the bridge and lets the HTTP
// action's built-in asynchronous pattern follow the 202 + Location until the 200.
//
// Deployed on its own, after the code (azd postdeploy hook infra/hooks/deploy-sample-logic-app.*, when the azd
// environment has DEPLOY_SAMPLE_LOGIC_APP=true), never from main.bicep: it needs a function key, and the host's
// key API answers only once code runs (listKeys(.../host/default) during the first provision fails with
// "ServiceUnavailable from host runtime", Azure/azure-functions-host#5722, #6568).
//
// The workflow definition is sample-logic-app.workflow.json, loaded as is, so tests run the very same definition
// through a model of the Logic Apps engine.

@description('Logic App name (the postdeploy hook passes the SAMPLE_LOGIC_APP_NAME output of main.bicep)')
param name string
param location string = resourceGroup().location
param tags object = {}
@description('The bridge root, e.g. https://func-xxx.azurewebsites.net/api')
param bridgeUrl string
@secure()
@description('A function key. No default value: it reaches the workflow only as the value of its SecureString parameter')
param bridgeKey string

resource workflow 'Microsoft.Logic/workflows@2019-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    state: 'Enabled'
    // Values for the definition's parameters. bridgeKey is a SecureString parameter without a defaultValue (a
    // default would be stored in plain text: create-parameters-workflows.md), hidden from run history together
    // with the action's inputs and outputs (runtimeConfiguration.secureData).
    parameters: {
      bridgeUrl: {
        value: bridgeUrl
      }
      bridgeKey: {
        value: bridgeKey
      }
    }
    definition: loadJsonContent('sample-logic-app.workflow.json')
  }
}

output workflowName string = workflow.name
