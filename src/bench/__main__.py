from src.bench import main

main()
