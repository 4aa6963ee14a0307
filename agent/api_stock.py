"""Stock endpoints (/v1/stock, /v1/skus). Placeholder until the stock writer lands."""

from flask import Blueprint

bp = Blueprint("stock", __name__)
