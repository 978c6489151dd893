"""The review page at /ui: where approvers see what runs wait for, and decide.

Server-rendered HTML with a little JavaScript, every file served by the app itself (no
CDN), since the service often runs on closed networks. ``install(app)`` adds it;
create_app does.
"""

from agentrt.service.ui.routes import install

__all__ = ["install"]
