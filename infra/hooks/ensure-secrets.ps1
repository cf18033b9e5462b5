# azd preprovision hook (Windows): same as ensure-secrets.sh.
$ErrorActionPreference = 'Stop'
function New-Key { $b = New-Object byte[] 32; [Security.Cryptography.RandomNumberGenerator]::Fill($b); [Convert]::ToBase64String($b) }
if (-not (azd env get-value WEBHOOK_SECRET 2>$null)) { azd env set WEBHOOK_SECRET ("whsec_" + (New-Key)); Write-Host 'generated WEBHOOK_SECRET' }
if (-not (azd env get-value TOKEN_SEALING_KEYS 2>$null)) { azd env set TOKEN_SEALING_KEYS (New-Key); Write-Host 'generated TOKEN_SEALING_KEYS' }
if (-not (azd env get-value STATUS_LINK_KEYS 2>$null)) { azd env set STATUS_LINK_KEYS ("s" + (Get-Date).ToUniversalTime().ToString('yyyyMMdd') + ":" + (New-Key)); Write-Host 'generated STATUS_LINK_KEYS' }
