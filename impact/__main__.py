from impact.console import main

main()
