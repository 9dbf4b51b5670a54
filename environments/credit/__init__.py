"""`agentrl/CreditChain-v0`: the credit-assignment benchmark (K turns, one terminal reward)."""

import gymnasium

if "agentrl/CreditChain-v0" not in gymnasium.registry:
    gymnasium.register(id="agentrl/CreditChain-v0", entry_point="environments.credit.env:CreditChainEnv")
