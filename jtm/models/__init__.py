"""CPC models: encoders, context networks, prediction heads, and a registry of builders."""
