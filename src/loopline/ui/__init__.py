"""The web dashboard: server-rendered pages over runs, datasets, models, deployments,
monitors, alarms and the loop, each with a JSON twin (``/api/...``).

``create_app(settings)`` (:mod:`loopline.ui.app`) builds the Starlette application;
``loopline ui`` serves it. Pages read the SDK classes of every layer and never SQL;
charts are drawn in the browser by the plotly.js file that ships inside the plotly
package, served by the UI itself, so nothing is fetched from the network. Nothing else
in loopline imports this package. See docs/ui.md.
"""

from __future__ import annotations
