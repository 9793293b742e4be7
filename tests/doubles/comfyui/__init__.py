"""A protocol-faithful ComfyUI double: ``main.py`` starts it like ComfyUI; ``launcher`` runs it in tests."""
