"""The people side of the controller: API tokens, user administration, classes, children, guardians and
consent records, and the roster import (issue #3). Issue #6's parent live view authorizes on these tables.
"""
