"""`azjobs web`: one live page for a whole run (machines, the run, the networks, games, play), served
read-only with Flask; the page is plain HTML, JS and CSS shipped in `static/`, drawn by hand as SVG."""
