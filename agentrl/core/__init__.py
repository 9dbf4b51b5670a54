"""Layer 1, the contracts: records (types), the env base class and its spaces, tools, the chat-model
protocol, token-exact chat formatting, the env registry, the checkpoint format, errors and file writes.
Imports nothing else from agentrl."""
