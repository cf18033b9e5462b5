// Optional sample (deploySampleLogicApp=true): a Consumption Logic App that starts an Excel operation through the
// bridge and lets the HTTP action's built-in asynchronous pattern follow the 202 + Location until the 200.
param name string
param location string
param tags object = {}
@description('The bridge root, e.g. https://func-xxx.azurewebsites.net/api')
param bridgeUrl string
@secure()
@description('A function key; passed as a secure workflow parameter so it never shows in run history')
param bridgeKey string

resource workflow 'Microsoft.Logic/workflows@2019-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    state: 'Enabled'
    parameters: {
      bridgeUrl: {
        value: bridgeUrl
      }
      bridgeKey: {
        value: bridgeKey
      }
    }
    definition: {
      '$schema': 'https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#'
      contentVersion: '1.0.0.0'
      parameters: {
        bridgeUrl: {
          type: 'String'
        }
        bridgeKey: {
          type: 'SecureString'
        }
      }
      triggers: {
        manual: {
          type: 'Request'
          kind: 'Http'
          inputs: {
            schema: {
              type: 'object'
              required: [
                'workbook'
                'action'
              ]
              properties: {
                workbook: {
                  type: 'string'
                }
                action: {
                  type: 'string'
                }
                parameters: {
                  type: 'object'
                }
                sessionId: {
                  type: 'string'
                }
              }
            }
          }
        }
      }
      actions: {
        Run_Excel_operation: {
          // No operationOptions 'DisableAsyncPattern': the engine polls Location while it gets 202 and
          // finishes on the 200 with the operation record (docs/api.md).
          type: 'Http'
          inputs: {
            method: 'POST'
            uri: '@{parameters(\'bridgeUrl\')}/operations'
            headers: {
              'x-functions-key': '@{parameters(\'bridgeKey\')}'
              'Content-Type': 'application/json'
            }
            body: '@triggerBody()'
          }
          limit: {
            timeout: 'PT1H'
          }
          runAfter: {}
        }
        Fail_unless_succeeded: {
          type: 'If'
          expression: {
            and: [
              {
                not: {
                  equals: [
                    '@body(\'Run_Excel_operation\')?[\'status\']'
                    'succeeded'
                  ]
                }
              }
            ]
          }
          actions: {
            Terminate_failed: {
              type: 'Terminate'
              inputs: {
                runStatus: 'Failed'
                runError: {
                  code: '@{body(\'Run_Excel_operation\')?[\'status\']}'
                  message: '@{string(body(\'Run_Excel_operation\')?[\'error\'])}'
                }
              }
            }
          }
          runAfter: {
            Run_Excel_operation: [
              'Succeeded'
            ]
          }
        }
      }
      outputs: {}
    }
  }
}

output workflowName string = workflow.name
