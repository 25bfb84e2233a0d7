from azjobs.cli import main

main()
