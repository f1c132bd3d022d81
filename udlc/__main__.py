from udlc.cli import main

main()
