"""The monthly report in the formats people open: Excel, HTML, CSV, a terminal table, and the
monthly mail. `model` decides what is shown; each format only lays it out."""
