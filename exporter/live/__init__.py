"""The Enlighten live stream (ENLIGHTEN_API.md §7): power now, about one frame a second per site.

``frame`` decodes one protobuf frame; ``session`` keeps one site's MQTT-over-WebSocket session alive
(credentials, renewal, reconnection); ``state`` holds each site's latest frame and energy counters for the
renderers; ``streams`` runs the sessions of every site; ``collector`` and ``influx`` are its two outputs.
"""
