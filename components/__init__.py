"""Figures and layout fragments: numpy arrays in, plotly figures and Dash components out. No torch."""
