"""Layer 1: identities, the message layout, workspace paths, syft:// URLs, permission rules.

Pure values and functions: the only place where strings become path parts.
"""

from fedbox.datasite.identity import (
    new_message_id,
    validate_app_name,
    validate_email,
    validate_endpoint,
    validate_message_id,
)
from fedbox.datasite.paths import (
    Kind,
    MessagePath,
    datasite_dir,
    outbox_dir,
    parse_message_path,
    request_path,
    response_path,
)
from fedbox.datasite.permissions import (
    InvalidPermissionFile,
    Level,
    PermissionSet,
    parse_permission_file,
    permissions_from_files,
)
from fedbox.datasite.urls import path_to_url, url_to_path
from fedbox.datasite.workspace import Workspace, default_state_dir, fedbox_home

__all__ = [
    "InvalidPermissionFile",
    "Kind",
    "Level",
    "MessagePath",
    "PermissionSet",
    "Workspace",
    "datasite_dir",
    "default_state_dir",
    "fedbox_home",
    "new_message_id",
    "outbox_dir",
    "parse_message_path",
    "parse_permission_file",
    "path_to_url",
    "permissions_from_files",
    "request_path",
    "response_path",
    "url_to_path",
    "validate_app_name",
    "validate_email",
    "validate_endpoint",
    "validate_message_id",
]
