"""Microsoft Graph's Excel API as the bridge speaks it: the client that sends requests with a token, what an
answer means, and the long-running-operation dialect (the start's answer, the status, the result)."""
