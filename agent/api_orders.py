"""Order feed endpoints (/v1/orders). Placeholder until the feed lands."""

from flask import Blueprint

bp = Blueprint("orders", __name__)
