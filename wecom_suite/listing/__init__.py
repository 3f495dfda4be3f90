"""The listing checker: WeCom's individual-developer listing rules, checked before review.

``rules`` holds the rule table and the banned words as data, ``checks`` applies them to a
parsed listing, ``online`` runs WeCom's URL verification against the callback URLs.
"""
