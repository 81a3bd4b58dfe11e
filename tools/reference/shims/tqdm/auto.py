tqdm = None
