"""The course as code: each Práctica as data (goals, steps, the hand commands and
vpd's), and graders that check a state built by hand (`vpd practica check`)."""
