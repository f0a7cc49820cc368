"""Use cases on foundation documents, one per module. Reads of one document
and of the whole bundle go through the cache; every write invalidates it
after commit."""

from application.foundation.create_document import CreateDocument
from application.foundation.delete_document import DeleteDocument
from application.foundation.get_document import GetDocument
from application.foundation.get_foundation_bundle import GetFoundationBundle
from application.foundation.list_documents import ListDocuments
from application.foundation.peek_document import PeekDocument
from application.foundation.update_document import UpdateDocument

__all__ = [
    "CreateDocument",
    "DeleteDocument",
    "GetDocument",
    "GetFoundationBundle",
    "ListDocuments",
    "PeekDocument",
    "UpdateDocument",
]
