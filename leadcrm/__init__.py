"""LeadCRM core: leads, their interactions, segments and follow-ups."""
