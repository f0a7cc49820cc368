"""Use cases on a workspace's webhook, one per module: read, configure,
delete (owners only).

The URL is checked when it is configured: http(s), and unless private
targets are allowed, every address its host resolves to must be public
(domain/webhooks.py). The sender checks again at each connection.
"""

from application.webhooks.configure_webhook import ConfigureWebhook
from application.webhooks.delete_webhook import DeleteWebhook
from application.webhooks.get_webhook import GetWebhook
from application.webhooks.settings import WebhookSettings, check_target

__all__ = ["ConfigureWebhook", "DeleteWebhook", "GetWebhook", "WebhookSettings", "check_target"]
