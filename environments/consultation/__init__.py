"""`agentrl/Consultation-v0`: a doctor agent interviews a simulated patient and names a diagnosis;
one reward at the end (probability of the correct diagnosis + correctness - question penalties)."""

import gymnasium

ENV_ID = "agentrl/Consultation-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="environments.consultation.env:ConsultationEnv")
