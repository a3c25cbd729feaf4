"""The fleet: a run is a row, not a process (DESIGN.md section 3).

``schedule`` (fired by beat) finds markets with a newly closed candle and enqueues one
``evaluate_market`` task per market and batch of runs; ``evaluate_market`` fetches the candles once
and ticks every due run of that market.
"""
