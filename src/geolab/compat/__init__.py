"""Compatibility shims for third-party packages (torchvision CPU op fallbacks and import hook)."""
